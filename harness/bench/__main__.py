"""`python -m harness.bench`: the objective-versus-floor step bench (this package's `main`)."""
import sys

from harness.bench import main

sys.exit(main())
