import sys

from lstmknn.engine.cli import main

sys.exit(main())
