"""The start, once, before any server: the settings' inputs from files and the
shell, and nginx's and uWSGI's configs rendered from the record."""
