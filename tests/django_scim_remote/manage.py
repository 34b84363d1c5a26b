#!/usr/bin/env python3
"""Runs the django-scim2 test remote (see README.md beside this file)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "remote.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
