"""`python -m mesh.operator ARGS`: the same as `seldon-mesh operator ARGS`."""

import sys

from mesh.operator.main import main

sys.exit(main(sys.argv[1:]))
