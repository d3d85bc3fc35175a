#!/usr/bin/env python
"""The example storefront's manage.py (see README.md next to it)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run from a checkout without installing: the plugin package is two folders up.
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storefront.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
