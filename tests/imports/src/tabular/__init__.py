"""A package imported as `tabular`, through its py_library's `imports = ["src"]`."""
