"""The release programs a keras_saved_model gets: `<name>.sign`, `<name>.verify` and
`<name>.push` (rules/private/release.py). Internal."""

load(":py.bzl", "py_binary")

_PROGRAM = Label("//rules/private:release.py")

# Its file digests and file list (release.py imports them).
_PROVENANCE = Label("//rules/private:provenance.py")

def release_targets(name, tags = None, visibility = None, testonly = None):
    """Makes the `bazel run` programs that sign, verify and push the export `name`.

    Keys stay out of build actions and caches: each runs at release, on the built
    export and its `<name>.provenance.json` (docs/rules.md, "Releasing an export").

    Args:
      name: the keras_saved_model target, in the calling package.
      tags: as usual.
      visibility: as usual.
      testonly: as usual.
    """
    repository = native.repository_name()
    target = "%s//%s:%s" % ("" if repository == "@" else repository, native.package_name(), name)
    for step in ["sign", "verify", "push"]:
        py_binary(
            name = "%s.%s" % (name, step),
            srcs = [_PROGRAM, _PROVENANCE],
            main = _PROGRAM,
            args = [step, "--saved_model=$(rootpath :%s)" % name, "--target=" + target],
            data = [":" + name],
            tags = tags,
            testonly = testonly,
            visibility = visibility,
        )
