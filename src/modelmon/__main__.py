import sys

from modelmon.cli import main

sys.exit(main())
