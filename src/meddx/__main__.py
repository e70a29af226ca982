import sys

from meddx.cli import main

sys.exit(main())
