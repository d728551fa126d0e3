"""The processes beside the servers (the arbiter's helpers and the health
check), and what they read of uWSGI and nginx."""
