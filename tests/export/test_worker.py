"""The exporter as a Bazel persistent worker writes exactly what one-shot runs write.

One worker process serves several exports in a row, with a failing request among
them; every export must be byte-identical to the same export from a fresh process,
and the failure must neither kill the worker nor change the exports after it. A worker
that cannot start (a flag, a missing package) answers every request with the cause
instead of dying, since Bazel shows a dead worker only as a broken pipe. The
WorkRequest and WorkResponse messages are built with protobuf's own library from
Bazel's worker_protocol.proto field numbers, independently of the exporter's codec.
"""

import os
import struct
import subprocess

from absl.testing import absltest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tests.export import testmodels, testutil

_MODELS = ["mlp", "compiled", "two_in_two_out", "custom_layer"]


def _worker_messages():
    """WorkRequest/WorkResponse classes for Bazel's worker protocol (blaze.worker)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="worker_protocol_test.proto", package="blaze.worker", syntax="proto3"
    )
    string, int32, message = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
    )
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    fields = {
        "Input": [("path", 1, string, optional), ("digest", 2, 12, optional)],
        "WorkRequest": [
            ("arguments", 1, string, repeated),
            ("inputs", 2, message, repeated),
            ("request_id", 3, int32, optional),
            ("verbosity", 4, int32, optional),
        ],
        "WorkResponse": [
            ("exit_code", 1, int32, optional),
            ("output", 2, string, optional),
            ("request_id", 3, int32, optional),
        ],
    }
    for name, specs in fields.items():
        message_proto = proto.message_type.add(name=name)
        for field_name, number, field_type, label in specs:
            field = message_proto.field.add(
                name=field_name, number=number, type=field_type, label=label
            )
            if field_type == message:
                field.type_name = ".blaze.worker.Input"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"blaze.worker.{n}"))
        for n in ("WorkRequest", "WorkResponse")
    )


WorkRequest, WorkResponse = _worker_messages()


def _varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += struct.pack("B", value & 0x7F | 0x80)
        value >>= 7
    return out + struct.pack("B", value)


def _read_response(stream) -> "WorkResponse":
    size = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            raise AssertionError("the worker closed stdout instead of answering")
        size |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return WorkResponse.FromString(stream.read(size))


def _flags(model: str, output_dir: str) -> list[str]:
    flags = [f"--builder={testmodels.MODULE}:{model}", f"--output_dir={output_dir}"]
    if model == "custom_layer":
        flags.append(f"--custom_objects=Scale={testmodels.MODULE}:Scale")
    return flags


class WorkerTest(absltest.TestCase):
    def test_worker_exports_are_identical_to_one_shot_exports(self):
        tmp = self.create_tempdir().full_path
        for model in _MODELS:
            result = testutil.run_exporter(_flags(model, f"{tmp}/one_shot/{model}"))
            self.assertEqual(result.returncode, 0, result.stderr)

        worker = subprocess.Popen(
            testutil.exporter_command() + ["--persistent_worker"],
            env=testutil.child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(worker.kill)
        requests = [(m, _flags(m, f"{tmp}/worker/{m}")) for m in _MODELS[:2]]
        requests.append(("raises", _flags("raises", f"{tmp}/worker/raises")))
        requests += [(m, _flags(m, f"{tmp}/worker/{m}")) for m in _MODELS[2:]]
        for i, (model, flags) in enumerate(requests):
            flagfile = os.path.join(tmp, f"request{i}.params")
            with open(flagfile, "w", encoding="utf-8") as f:
                f.write("\n".join(flags + ["--quiet"]) + "\n")
            request = WorkRequest(arguments=[f"--flagfile={flagfile}"], request_id=i)
            data = request.SerializeToString()
            worker.stdin.write(_varint(len(data)) + data)
            worker.stdin.flush()
            response = _read_response(worker.stdout)
            self.assertEqual(response.request_id, i)
            if model == "raises":
                self.assertEqual(response.exit_code, 1)
                self.assertIn("--builder", response.output)
                self.assertIn("builder exploded", response.output)
                self.assertFalse(os.path.exists(f"{tmp}/worker/raises/1"))
            else:
                self.assertEqual(response.exit_code, 0, response.output)
                self.assertEqual(response.output, "", "--quiet: silent on success")

        worker.stdin.close()
        self.assertEqual(worker.wait(timeout=testutil.TIMEOUT_S), 0)
        for model in _MODELS:
            with self.subTest(model=model):
                one_shot = testutil.tree_bytes(f"{tmp}/one_shot/{model}")
                served = testutil.tree_bytes(f"{tmp}/worker/{model}")
                self.assertIn("1/saved_model.pb", one_shot)
                self.assertEqual(sorted(one_shot), sorted(served))
                for name in one_shot:
                    self.assertEqual(one_shot[name], served[name], f"{model}/{name}")

    def _start_failing_worker(self, extra_args=(), pythonpath_front=None):
        env = testutil.child_env()
        if pythonpath_front:
            env["PYTHONPATH"] = os.pathsep.join([pythonpath_front, env["PYTHONPATH"]])
        worker = subprocess.Popen(
            testutil.exporter_command() + ["--persistent_worker", *extra_args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(worker.kill)
        return worker

    def _assert_each_request_gets(self, worker, *expected: str) -> None:
        """Two requests, each answered with exit code 1 and the expected words; the
        worker exits with 1 once Bazel closes its stdin."""
        for request_id in (4, 5):
            request = WorkRequest(
                arguments=["--flagfile=x.params"], request_id=request_id
            )
            data = request.SerializeToString()
            worker.stdin.write(_varint(len(data)) + data)
            worker.stdin.flush()
            response = _read_response(worker.stdout)
            self.assertEqual(response.request_id, request_id)
            self.assertEqual(response.exit_code, 1)
            self.assertIn("the persistent worker could not start", response.output)
            for words in expected:
                self.assertIn(words, response.output)
        worker.stdin.close()
        self.assertEqual(worker.wait(timeout=testutil.TIMEOUT_S), 1)

    def test_a_worker_with_a_bad_flag_answers_each_request_with_the_flag_error(self):
        worker = self._start_failing_worker(["--no_such_flag=1"])
        self._assert_each_request_gets(
            worker, "Unknown command line flag 'no_such_flag'"
        )

    def test_a_worker_missing_a_core_package_names_it_and_where_it_comes_from(self):
        # absl, which the exporter imports first, missing from the worker's Python.
        fake = self.create_tempdir()
        fake.create_file(
            "absl/__init__.py",
            "raise ModuleNotFoundError(\"No module named 'absl'\", name='absl')\n",
        )
        worker = self._start_failing_worker(pythonpath_front=fake.full_path)
        self._assert_each_request_gets(
            worker,
            "ModuleNotFoundError: No module named 'absl'",
            "tensorflow-cpu, keras, absl-py",
            "--@rules_keras//export:tensorflow",
        )


if __name__ == "__main__":
    absltest.main()
