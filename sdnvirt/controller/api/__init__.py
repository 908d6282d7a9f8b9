"""The server side of the REST API: its routes, its error shape, its token, and the server that runs them."""
