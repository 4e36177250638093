#!/usr/bin/env bash
# Adding a plain attribute to keras_saved_model touches the 4 files CONTRIBUTING.md
# lists, and works; so does adding an artifact format with its 3 shared files (below).
# A copy of this checkout (uncommitted edits included) gets a throwaway attribute from
# add_attribute.patch, `note`, a line the export writes into `assets/note.txt`: its
# settings-table entry, the writer's use of it, its docs row and its test. Its diff
# must touch exactly those 4 files; then, in the copy, the docs and surface test, the
# patch's own test and a keras_saved_model target setting `note` (with its
# keras_saved_model_test) must pass, and the target's SavedModel must hold the note. The copy builds in an output base of its own, kept across runs.
source "$(dirname "$0")/lib.sh"

start=$(now)
copy="$E2E_TMP/workspace"
mkdir "$copy"
# Tracked and new files, not the bazel-* symlinks or anything else .gitignore names.
(cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -cf - -T - 2>/dev/null) | tar -xf - -C "$copy"
git -C "$copy" init -q
git -C "$copy" add -A
git -C "$copy" -c user.name=e2e -c user.email=e2e@localhost commit -qm "this checkout"

# -C1: one line of context must match, so the patch survives edits elsewhere in the
# files it touches.
git -C "$copy" apply -C1 "$REPO_ROOT/tests/e2e/add_attribute.patch" ||
  fail "add_attribute.patch no longer applies: make its 4 edits again on the current files and save \`git diff -U1\` over it"
git -C "$copy" diff --stat
changed=$(git -C "$copy" diff --name-only | sort | tr '\n' ' ')
expected="docs/rules.md export/lib/writer.py export/settings.bzl tests/export/test_cli.py "
[ "$changed" = "$expected" ] || fail "the patch touches '$changed', not the 4 files '$expected'"
expect_in "$REPO_ROOT/CONTRIBUTING.md" "## Add an attribute to keras_saved_model (4 files)"
echo "ok: adding the attribute touches 4 files"

# A user's target setting the new attribute: not part of adding it.
mkdir "$copy/tests/added_attribute"
cat >"$copy/tests/added_attribute/BUILD" <<'EOF'
load("//rules:defs.bzl", "keras_saved_model", "keras_saved_model_test")

keras_saved_model(
    name = "noted",
    testonly = True,
    builder = "tests.export.testmodels:mlp",
    note = "trained on 2026-12",
    deps = ["//tests/export:testmodels"],
)

keras_saved_model_test(
    name = "noted_test",
    saved_model = ":noted",
)
EOF

base=$(e2e_output_base add_attribute)
at_exit "(cd '$copy' && bazel --output_base='$base' shutdown >/dev/null 2>&1)"
bazel_copy() {
  local command=$1
  shift
  (cd "$copy" && bazel --output_base="$base" --max_idle_secs=300 "$command" \
    --symlink_prefix=/ "$@")
}
bazel_copy test //tests/docs:surface_test //tests/added_attribute:noted_test \
  >"$E2E_TMP/tests.log" 2>&1 || {
  tail -60 "$E2E_TMP/tests.log" >&2
  fail "the surface test or the new target's keras_saved_model_test failed"
}
echo "ok: //tests/docs:surface_test and //tests/added_attribute:noted_test pass"
bazel_copy test //tests/export:test_cli --test_filter=NoteTest \
  >"$E2E_TMP/note_test.log" 2>&1 || {
  tail -60 "$E2E_TMP/note_test.log" >&2
  fail "the patch's own test failed"
}
testlogs=$(bazel_copy info bazel-testlogs 2>/dev/null)
expect_in "$testlogs/tests/export/test_cli/test.log" \
  "[       OK ] NoteTest.test_note_is_written_into_the_assets"

bin=$(bazel_copy info bazel-bin 2>/dev/null)
note="$bin/tests/added_attribute/noted/1/assets/note.txt"
[ "$(cat "$note")" = "trained on 2026-12" ] || fail "$note does not hold the note"
expect_in "$bin/tests/added_attribute/noted.export.json" '"note":"trained on 2026-12"'
echo "ok: the target's SavedModel holds assets/note.txt"

# Adding an artifact format touches at most the 5 shared files CONTRIBUTING.md lists
# (3 here: keras_card_model needs no PyPI package) besides its own folder, and works:
# add_format.patch adds a throwaway format, keras_card_model (formats/card/: the
# export's serving inputs and outputs as a JSON card), on top of the attribute above.
git -C "$copy" add -A
git -C "$copy" -c user.name=e2e -c user.email=e2e@localhost commit -qm "the attribute"
git -C "$copy" apply -C1 "$REPO_ROOT/tests/e2e/add_format.patch" ||
  fail "add_format.patch no longer applies: make its edits again on the current files and save \`git diff -U1\` over it"
git -C "$copy" add -A
shared=$(git -C "$copy" diff --cached --name-only | grep -v '^formats/card/' | sort | tr '\n' ' ')
expected="docs/rules.md export/formats.bzl rules/defs.bzl "
[ "$shared" = "$expected" ] || fail "the new format touches the shared files '$shared', not '$expected'"
expect_in "$REPO_ROOT/CONTRIBUTING.md" "## Add an artifact format (3 shared files, 5 with PyPI packages)"
echo "ok: adding a format touches its folder and 3 shared files"
# A user's target of the new format, beside the export above.
sed -i '1s/^load("\/\/rules:defs.bzl", /&"keras_card_model", "keras_card_model_test", /' \
  "$copy/tests/added_attribute/BUILD"
cat >>"$copy/tests/added_attribute/BUILD" <<'EOF'

keras_card_model(
    name = "noted_card",
    testonly = True,
    card_export = ":noted",
)

keras_card_model_test(
    name = "noted_card_test",
    card_model = ":noted_card",
)
EOF
bazel_copy test //tests/docs:surface_test //tests/added_attribute:noted_card_test \
  >"$E2E_TMP/format_tests.log" 2>&1 || {
  tail -60 "$E2E_TMP/format_tests.log" >&2
  fail "the surface test or the new format's test failed"
}
echo "ok: //tests/docs:surface_test checks keras_card_model; //tests/added_attribute:noted_card_test passes"
echo "add_attribute: $(seconds_since "$start") s"
