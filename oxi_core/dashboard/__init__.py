"""`oxi dashboard`: a read-only web page over the ledger, served on 127.0.0.1 or exported as
static files. Standard library only (http.server, html), with a small hand-written script and
stylesheet shipped in the package: nothing to fetch, nothing to build."""
