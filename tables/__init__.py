"""Tables and plots rebuilt from stored results only (never by training).

The import name `tables` is also PyTables'. This project does not depend on PyTables; run
`python -m tables.build` from the repository root (or with this package installed ahead of
PyTables) and a test checks that it resolves here.
"""
IS_MUC2M_HARNESS_TABLES = True
