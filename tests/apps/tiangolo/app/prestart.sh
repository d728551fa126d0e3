#! /usr/bin/env bash
# Runs before the server, as in tiangolo's image (migrations go here).
echo "prestart: preparing"
touch /app/instance/prestart-ran
