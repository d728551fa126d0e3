"""The user's app (/app) as flaskbox finds, imports and watches it, in every
process that loads it: the master, the dev server, the hooks, the flask
command."""
