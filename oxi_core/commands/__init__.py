"""The ``oxi`` commands, grouped by what they are about. Each module imports only click at
the top; the work happens in functions that import what they need."""
