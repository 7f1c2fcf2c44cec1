"""``python -m mbvc`` runs the command line."""
import sys

from mbvc.cli import main

sys.exit(main())
