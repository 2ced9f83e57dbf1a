"""``python -m eventsp.train.stbp``: see :mod:`eventsp.train.stbp.train`."""

import sys

from eventsp.train.stbp.train import main

sys.exit(main())
