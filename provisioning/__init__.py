"""Tools for provisioning devices and brokers (test and development PKI)."""
