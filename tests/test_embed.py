"""The VM as a library people embed: vm/ as a CMake subproject (gcc and clang, -O3, -Werror), its installed
package (find_package(lnnvm) -> lnnvm::lnnvm, lnnvm.pc), a model exported as a C array, the two example apps
built against the installed package (Linux; Cortex-M4F under qemu-system-arm) with outputs bit-identical to the
host VM's, the arm-none-eabi library-only build, the PlatformIO / Arduino manifests, and the armv7 target whose
NEON softmax model runs on a Cortex-A7.

Each CMake build is one module-scoped fixture (built once, -j2): they are the expensive part."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from lnnedge import config, lnnb, recipe
from lnnedge.build import build
from lnnedge.compiler import compile_module
from lnnedge.models import build_model
from lnnedge.paths import ROOT, VM_DIR
from lnnedge.runtime import CVM
from lnnedge.vm_library import arduino_library, read_properties, vm_version
from test_pipeline import invoke, ok

JOBS = "-j2"  # two shared cores
M4_TOOLCHAIN = ROOT / "toolchains" / "cmake" / "arm-none-eabi.cmake"
QEMU_M4 = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-kernel"]


def run(*args: object, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> str:
    """A command that must succeed; its stdout. On failure the assertion shows its output."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def cmake_build(source: Path, build_dir: Path, *options: str) -> str:
    """Configure + build; returns the build's output (the compiler's warnings would be in it)."""
    run("cmake", "-S", source, "-B", build_dir, *options)
    return run("cmake", "--build", build_dir, JOBS)


def subproject(tmp: Path) -> Path:
    """A one-line project that embeds vm/ with add_subdirectory, as a user's CMakeLists.txt would."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.13)\nproject(user_app C)\n"
                                        f'add_subdirectory("{VM_DIR}" lnnvm)\n')
    return tmp


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory) -> Path:
    """mlp-digits (64-64-32-10, seeded weights) with a softmax on its logits, 16 bundled test cases (PyTorch's
    outputs): small enough for the Cortex-M4, and it runs the softmax kernels the ARMv8 build broke on armv7."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(build_model(recipe.load("mlp-digits").model), torch.nn.Softmax(dim=-1)).eval()
    x = (np.random.default_rng(0).standard_normal((16, 64)) * 3).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    compiled = compile_module(net, (torch.zeros(1, 64),), name="mlp-digits-softmax",
                              tests=lnnb.TestSet(x, y, 1e-5))
    path = tmp_path_factory.mktemp("model") / "digits-softmax.lnnb"
    path.write_bytes(compiled.data)
    return path


@pytest.fixture(scope="module")
def exported(softmax_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    proc = ok("export", "--file", str(softmax_model), "--out", str(out), "--name", "model")
    assert f"wrote {out / 'model.h'} and {out / 'model.c'}" in proc.stdout
    return out


@pytest.fixture(scope="module")
def host_prefix(tmp_path_factory) -> Path:
    """vm/ embedded with add_subdirectory, Release (-O3) with gcc, installed: the package the Linux app uses."""
    tmp = tmp_path_factory.mktemp("gcc-release")
    output = cmake_build(subproject(tmp / "src"), tmp / "build", "-DCMAKE_C_COMPILER=gcc",
                         "-DCMAKE_BUILD_TYPE=Release")
    assert "warning" not in output.lower()
    flags = (tmp / "build" / "lnnvm" / "CMakeFiles" / "liblnnvm.dir" / "flags.make").read_text()
    assert "-O3" in flags and "-Werror" in flags
    prefix = tmp / "prefix"
    run("cmake", "--install", tmp / "build", "--prefix", prefix)
    return prefix


@pytest.fixture(scope="module")
def m4_prefix(tmp_path_factory) -> tuple[Path, Path]:
    """vm/ alone with the arm-none-eabi toolchain file (library only: no OS), Release, installed."""
    tmp = tmp_path_factory.mktemp("m4")
    output = cmake_build(VM_DIR, tmp / "build", f"-DCMAKE_TOOLCHAIN_FILE={M4_TOOLCHAIN}",
                         "-DCMAKE_BUILD_TYPE=Release")
    assert "warning" not in output.lower()
    prefix = tmp / "prefix"
    run("cmake", "--install", tmp / "build", "--prefix", prefix)
    return tmp / "build", prefix


def host_outputs(model: Path, library: Path, kernels: str | None) -> np.ndarray:
    """The host VM's outputs for the model's bundled test inputs, one row per run as the example apps do."""
    vm = CVM(model.read_bytes(), max_batch=1, library=library)
    if kernels:
        vm.use_kernels(kernels)
    x = vm.tests()[0]
    return np.stack([vm.run([x[i:i + 1]])[0][0] for i in range(len(x))])


def app_outputs(stdout: str) -> np.ndarray:
    """The `case N: xxxxxxxx ...` lines of an example app: the output floats from their bits."""
    rows = [[int(w, 16) for w in line.split(":", 1)[1].split()] for line in stdout.splitlines()
            if line.startswith("case ")]
    return np.array(rows, dtype=np.uint32).view(np.float32)


def test_export_writes_an_aligned_array_and_the_sizes(softmax_model, exported):
    data = softmax_model.read_bytes()
    program = lnnb.read(data)
    header = (exported / "model.h").read_text()
    macros = dict(re.findall(r"^#define (MODEL_\w+) (\d+)u$", header, re.M))
    assert macros == {"MODEL_SIZE": str(len(data)), "MODEL_ALIGN": "64", "MODEL_BATCH": "1",
                      "MODEL_ARENA_SIZE": str(program.arena_size(1)), "MODEL_NUM_INPUTS": "1",
                      "MODEL_NUM_OUTPUTS": "1", "MODEL_INPUT0_ELEMS": "64", "MODEL_OUTPUT0_ELEMS": "10"}
    source = (exported / "model.c").read_text()
    assert "_Alignas(64) const uint8_t model[MODEL_SIZE] = {" in source
    body = source.split("{", 1)[1].rsplit("}", 1)[0]
    assert bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body)) == data


def test_export_refuses_bad_input_with_one_line(softmax_model, tmp_path):
    bad = tmp_path / "bad.lnnb"
    bad.write_bytes(softmax_model.read_bytes()[:-1] + b"\0")
    for args, message in [
        (("--file", str(tmp_path / "none.lnnb")), "cannot read the model"),
        (("--file", str(bad)), "CRC-32 mismatch"),
        (("--file", str(softmax_model), "--format", "xxd"), "the only format is c"),
        (("--file", str(softmax_model), "--name", "my-model"), "not a C identifier (say 'my_model')"),
        (("--file", str(softmax_model), "--batch", "0"), "--batch"),
    ]:
        proc = invoke("export", "--out", str(tmp_path / "out"), *args)
        assert proc.returncode == 1 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_linux_example_builds_against_the_installed_package_and_matches_the_host_vm(
        host_prefix, exported, softmax_model, host_build, tmp_path):
    assert (host_prefix / "lib" / "cmake" / "lnnvm" / "lnnvmConfigVersion.cmake").is_file()
    assert not (host_prefix / "bin").exists(), "a subproject installs the library, not the runner"
    build_dir = tmp_path / "app"
    output = cmake_build(ROOT / "examples" / "linux", build_dir, f"-DCMAKE_PREFIX_PATH={host_prefix}",
                         f"-DMODEL_DIR={exported}", "-DCMAKE_BUILD_TYPE=Release")
    assert "warning" not in output.lower()
    stdout = run(build_dir / "lnn_app")
    assert re.search(r"^isa \w+, 16 cases, max_abs_err \S+, PASSED$", stdout, re.M)
    isa = re.search(r"^isa (\w+)", stdout, re.M).group(1)
    np.testing.assert_array_equal(app_outputs(stdout), host_outputs(softmax_model, host_build.library, isa))


def test_pkg_config_file_builds_the_same_app(host_prefix, exported, softmax_model, host_build, tmp_path):
    """lnnvm.pc is relocatable (the prefix from its own directory): cc `pkg-config --cflags --libs lnnvm`."""
    env = {"PKG_CONFIG_PATH": str(host_prefix / "lib" / "pkgconfig")}
    assert run("pkg-config", "--modversion", "lnnvm", env=env).strip() == vm_version()
    flags = run("pkg-config", "--cflags", "--libs", "lnnvm", env=env).split()
    includes = [Path(f[2:]).resolve() for f in flags if f.startswith("-I")]
    assert includes == [host_prefix.resolve() / "include"] and "-llnnvm" in flags and "-lm" in flags
    app = tmp_path / "app"
    run("cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", app, ROOT / "examples" / "linux" / "main.c",
        exported / "model.c", f"-I{exported}", *flags)
    stdout = run(app)
    isa = re.search(r"^isa (\w+)", stdout, re.M).group(1)
    np.testing.assert_array_equal(app_outputs(stdout), host_outputs(softmax_model, host_build.library, isa))


def test_clang_release_subproject_is_warning_free_at_o3(tmp_path):
    output = cmake_build(subproject(tmp_path / "src"), tmp_path / "build", "-DCMAKE_C_COMPILER=clang",
                         "-DCMAKE_BUILD_TYPE=Release")
    assert "warning" not in output.lower()
    flags = (tmp_path / "build" / "lnnvm" / "CMakeFiles" / "liblnnvm.dir" / "flags.make").read_text()
    assert "-O3" in flags and "-Werror" in flags
    assert (tmp_path / "build" / "lnnvm" / "liblnnvm.a").is_file()
    assert not (tmp_path / "build" / "lnnvm" / "lnnvm").exists(), "a subproject builds no runner by default"


def test_arm_none_eabi_build_is_the_library_alone(m4_prefix):
    build_dir, prefix = m4_prefix
    assert (prefix / "lib" / "liblnnvm.a").is_file() and (prefix / "include" / "lnnvm.h").is_file()
    assert not (build_dir / "lnnvm").exists() and not (build_dir / "lnn_kernel_test").exists()
    attributes = run("arm-none-eabi-readelf", "-A", prefix / "lib" / "liblnnvm.a")
    # every object for the Cortex-M4F's hard-float ABI (the toolchain file's CPU flags reached the compiler)
    assert attributes.count('Tag_CPU_name: "7E-M"') == attributes.count("File: ") > 0
    assert attributes.count("Tag_ABI_VFP_args: VFP registers") == attributes.count("File: ")


def test_cortex_m_example_runs_under_qemu_and_matches_the_host_scalar_vm(m4_prefix, exported, softmax_model,
                                                                         host_build, tmp_path):
    _, prefix = m4_prefix
    build_dir = tmp_path / "m4-app"
    output = cmake_build(ROOT / "examples" / "cortex-m", build_dir, f"-DCMAKE_TOOLCHAIN_FILE={M4_TOOLCHAIN}",
                         f"-DCMAKE_PREFIX_PATH={prefix}", f"-DMODEL_DIR={exported}", "-DCMAKE_BUILD_TYPE=Release")
    assert "warning" not in output.lower()
    stdout = run(*QEMU_M4, build_dir / "lnn_m4_app.elf", timeout=120)  # semihosting exit 0: passed
    assert stdout.rstrip().endswith("isa cm4, 16 cases, PASSED")
    # the Cortex-M4F runs the cm4 set (vm/src/kernels_cm4.c): its products fuse the multiply-adds, so it is
    # within the products' rounding of what the host's scalar set gives, not bit for bit
    np.testing.assert_allclose(app_outputs(stdout), host_outputs(softmax_model, host_build.library, "scalar"),
                               rtol=0, atol=1e-6)


def test_platformio_manifest_follows_the_library_json_schema():
    """The fields and rules of PlatformIO's library.json schema (platformio-core
    platformio/assets/schema/library.json; docs.platformio.org manifests/library-json), checked here rather than
    fetched: name, version, description and keywords required; the build directories and headers exist."""
    import json

    manifest = json.loads((VM_DIR / "library.json").read_text())
    known = {"$schema", "name", "version", "description", "keywords", "homepage", "repository", "authors",
             "license", "frameworks", "platforms", "headers", "examples", "dependencies", "export", "scripts",
             "build"}
    assert set(manifest) <= known
    assert {"name", "version", "description", "keywords"} <= set(manifest)
    name = manifest["name"]
    assert len(name) <= 50 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name, re.I)
    assert len(manifest["version"]) <= 20 and manifest["version"] == vm_version()
    assert 0 < len(manifest["description"]) <= 255
    assert all(len(k) <= 255 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", k) for k in manifest["keywords"])
    build_opts = manifest["build"]
    assert set(build_opts) <= {"flags", "unflags", "includeDir", "srcDir", "srcFilter", "extraScript", "libArchive",
                               "libLDFMode", "libCompatMode", "builder"}
    include, src = VM_DIR / build_opts["includeDir"], VM_DIR / build_opts["srcDir"]
    assert all((include / h).is_file() for h in manifest["headers"])
    assert all((VM_DIR / p).exists() for p in manifest["export"]["include"])
    # as PlatformIO builds it: every file of srcDir with includeDir and srcDir on the path, the library's flags
    for c_file in sorted(src.glob("*.c")):
        run("arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
            "-std=gnu11", "-Wall", "-Wextra", "-Werror", *build_opts["flags"], f"-I{include}", f"-I{src}",
            "-fsyntax-only", c_file)


ARDUINO_CATEGORIES = {"Display", "Communication", "Signal Input/Output", "Sensors", "Device Control", "Timing",
                      "Data Storage", "Data Processing", "Other", "Uncategorized"}


def test_arduino_library_follows_the_library_specification(tmp_path):
    """The Arduino library specification (1.5 format, rev. 2.2) as arduino-lint's library.properties schema
    checks it in its strict mode: the required fields, the name's characters, a semver version, a known
    category, an http(s) url; and the assembled library compiles with src/ alone on the include path."""
    root = arduino_library(tmp_path)
    props = read_properties(root / "library.properties")
    required = {"name", "version", "author", "maintainer", "sentence", "paragraph", "url", "category",
                "architectures"}
    assert required <= set(props)
    assert set(props) <= required | {"email", "depends", "dot_a_linkage", "includes", "precompiled", "ldflags"}
    name = props["name"]
    assert len(name) <= 63 and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]*", name)
    assert not name.lower().startswith("arduino")
    assert props["version"] == vm_version() and re.fullmatch(r"\d+\.\d+\.\d+", props["version"])
    assert props["category"] in ARDUINO_CATEGORIES
    assert re.fullmatch(r"https?://\S+", props["url"])
    assert all(props[k] for k in required)
    src = root / "src"
    assert all((src / h.strip()).is_file() for h in props["includes"].split(","))
    for c_file in sorted(src.glob("*.c")):
        run("arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
            "-std=gnu11", "-Wall", "-Wextra", "-Werror", f"-I{src}", "-fsyntax-only", c_file)


ARMV8_ONLY = re.compile(r"\bv(sel\w*|maxnm|minnm|rint[anpmzrx]|cvt[anpm][su])\.", re.I)


@pytest.fixture(scope="module")
def arm32_builds():
    return {name: build(config.load_target(name), echo=lambda _m: None) for name in ("armv7", "rpi3")}


def test_armv7_build_has_no_armv8_instructions(arm32_builds):
    listing = run("arm-linux-gnueabihf-objdump", "-d", arm32_builds["armv7"].runner, timeout=120)
    assert not ARMV8_ONLY.search(listing), ARMV8_ONLY.search(listing).group(0)
    assert re.search(r"\bvmla\.f32\s+q\d+", listing), "the NEON kernels are in"
    # rpi3 is the Pi 3's AArch32 mode: an ARMv8 core, whose instructions the compiler uses
    assert ARMV8_ONLY.search(run("arm-linux-gnueabihf-objdump", "-d", arm32_builds["rpi3"].runner, timeout=120))


@pytest.mark.parametrize("target, cpu", [("armv7", "cortex-a7"), ("armv7", "cortex-a15"), ("rpi3", "max")])
def test_softmax_model_passes_its_tests_on_the_arm32_cpus(arm32_builds, softmax_model, target, cpu):
    """qemu-arm has no cortex-a53 model (QEMU 7.2): the rpi3 build runs on its ARMv8-A AArch32 CPU, max."""
    assert config.load_target(target).qemu.cpu == ("max" if target == "rpi3" else "cortex-a7")
    stdout = run("qemu-arm", "-cpu", cpu, arm32_builds[target].runner, "test", softmax_model, timeout=120)
    assert re.fullmatch(r"tests: 16 cases, max_abs_err \S+, tolerance 1e-05, PASSED\n", stdout)
    assert "isa: neon" in run("qemu-arm", "-cpu", cpu, arm32_builds[target].runner, "info", softmax_model)


def test_rpi3_build_is_not_for_armv7_cores(arm32_builds, softmax_model):
    """Why armv7 exists: the ARMv8 AArch32 build traps on a Cortex-A7 (SIGILL) where the armv7 one runs."""
    proc = subprocess.run(["qemu-arm", "-cpu", "cortex-a7", str(arm32_builds["rpi3"].runner), "test",
                           str(softmax_model)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -4, (proc.returncode, proc.stderr)  # SIGILL


def test_examples_need_a_model_dir(tmp_path, host_prefix):
    proc = subprocess.run(["cmake", "-S", str(ROOT / "examples" / "linux"), "-B", str(tmp_path / "b"),
                           f"-DCMAKE_PREFIX_PATH={host_prefix}"], capture_output=True, text=True)
    assert proc.returncode != 0 and "no model.c there" in proc.stderr
