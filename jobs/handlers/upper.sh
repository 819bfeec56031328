#!/bin/sh
# Upper-cases its stdin (ASCII letters) onto stdout: an example external handler.
exec tr '[:lower:]' '[:upper:]'
