"""Code every service of the stack shares: configuration, logging, retries.

Services import it as `common`; each service's Dockerfile copies this folder next to its own package.
"""
