//! D-Bus names and proxies.
