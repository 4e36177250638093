"""What every artifact rule's action is made of (artifact_rule.bzl uses it): its
environment, and how a setting of a table (export/formats.bzl lists the tables) becomes
an attribute and a flag. Internal."""

# The whole environment of every artifact rule's action. It is fixed so that outputs do not
# depend on the shell a build started from (TF_DETERMINISTIC_OPS, for one, changes the
# graph).
ACTION_ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "KERAS_BACKEND": "tensorflow",
    # Keras reads and writes keras.json there; the sandbox's scratch folder keeps the
    # user's ~/.keras out of the build.
    "KERAS_HOME": ".keras_home",
    "PATH": "/bin:/usr/bin",
    "PYTHONHASHSEED": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}

def attribute(setting, rule_name):
    """The attribute for a setting of a settings table.

    Args:
      setting: an entry of a settings table (export/formats.bzl lists them).
      rule_name: the rule it is for, named when the type is one it cannot take.

    Returns:
      The attr.* of the setting's type, default, values and doc.
    """
    kind, doc, default = setting["type"], setting["doc"], setting["default"]
    if kind == "string":
        return attr.string(default = default or "", values = setting.get("values", []), doc = doc)
    if kind == "label":
        return attr.label(allow_single_file = setting["allow_files"], doc = doc)
    if kind == "bool":
        return attr.bool(default = default, doc = doc)
    if kind == "int":
        return attr.int(default = default, doc = doc)
    if kind == "string_list":
        return attr.string_list(default = default, doc = doc)
    if kind == "string_dict":
        return attr.string_dict(default = default, doc = doc)
    fail("setting %r has the type %r, which %s cannot take" % (setting["name"], kind, rule_name))

def add_flag(args, setting, value):
    """Passes one setting's attribute value to the program as its flag, if set.

    Args:
      args: the action's Args.
      setting: an entry of a settings table.
      value: the attribute's value (a File for a label).

    Returns:
      The file to add to the action's inputs, or None.
    """
    name, kind = setting["name"], setting["type"]
    if kind == "bool":
        args.add("--" + name if value else "--no" + name)
    elif kind == "int":
        args.add(str(value), format = "--%s=%%s" % name)
    elif kind == "string" and value:
        args.add(value, format = "--%s=%%s" % name)
    elif kind == "label" and value:
        args.add(value, format = "--%s=%%s" % name)
        return value
    elif kind == "string_list" and value:
        args.add_joined(value, join_with = ",", format_joined = "--%s=%%s" % name)
    elif kind == "string_dict":
        args.add_all(["%s=%s" % (k, value[k]) for k in sorted(value)], format_each = "--%s=%%s" % name)
    return None

def display_label(label):
    """`//pkg:name`, or `@repo//pkg:name` outside the main repository (as users write it).

    str(label) is `@@//pkg:name` with Bzlmod.
    """
    repo = "@" + label.workspace_name if label.workspace_name else ""
    return "%s//%s:%s" % (repo, label.package, label.name)
