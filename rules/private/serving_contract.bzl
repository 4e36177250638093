"""The targets of keras_saved_model's `contract`: the test and the program that writes it."""

load(":py.bzl", "py_binary", "py_test")

_PROGRAM = Label("//rules/private:serving_contract.py")

def _display_label(name):
    """`//pkg:name` of a target of the calling package, as users write it."""
    repository = native.repository_name()
    return "%s//%s:%s" % ("" if repository == "@" else repository, native.package_name(), name)

def serving_contract(name, contract, tags = None, visibility = None, testonly = None):
    """Makes `<name>.contract_test` and `<name>.update_contract` for the export `name`.

    Args:
      name: the keras_saved_model target, in the calling package.
      contract: the contract file, a path relative to the package.
      tags: as usual; the test also gets them (a manual export, a manual test).
      visibility: of the update program.
      testonly: of the update program.
    """
    if not contract or contract.startswith(("/", "@")) or ":" in contract or ".." in contract.split("/"):
        fail(("keras_saved_model %s: `contract` must be a file name relative to the " +
              "package, such as \"%s.contract.json\"; got %r.") % (_display_label(name), name, contract))
    target = _display_label(name)
    args = ["--saved_model=$(rootpath :%s)" % name, "--target=" + target]
    py_test(
        name = name + ".contract_test",
        size = "small",
        srcs = [_PROGRAM],
        main = _PROGRAM,
        args = args + ["--contract=$(rootpath %s)" % contract],
        data = [":" + name, contract],
        deps = [Label("//export:lib")],
        tags = tags,
    )

    # It does not read the file, so it also writes the first one.
    py_binary(
        name = name + ".update_contract",
        srcs = [_PROGRAM],
        main = _PROGRAM,
        args = args + ["--update=" + "/".join([p for p in [native.package_name(), contract] if p])],
        data = [":" + name],
        deps = [Label("//export:lib")],
        tags = tags,
        testonly = testonly,
        visibility = visibility,
    )
