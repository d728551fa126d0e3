"""uWSGI's master and its forks: the module uWSGI loads once, before the
workers, and what watches the pool."""
