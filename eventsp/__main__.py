import sys

from eventsp.cli import main

sys.exit(main())
