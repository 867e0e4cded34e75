"""lab-cnn's tests: a package, so that they and their helpers import as ``tests.*``."""
