"""Test support shared by every test folder: loopback servers, validators, paths."""
