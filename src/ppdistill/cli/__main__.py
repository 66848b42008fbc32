import sys

from ppdistill.cli.main import main

sys.exit(main())
