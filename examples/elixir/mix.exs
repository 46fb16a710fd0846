# A tiny Elixir release whose nodes talk over py_dist (see the README, "Use
# it in your release").  py_dist comes from this repository by path; in your
# own project use `{:py_dist, git: "...", sparse: "erlang"}` or a path.
defmodule HelloEx.MixProject do
  use Mix.Project

  def project do
    [
      app: :hello_ex,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: deps(),
      releases: releases()
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end

  defp deps do
    [{:py_dist, path: "../../erlang"}]
  end

  defp releases do
    [
      hello_ex: [
        # the release copies py_dist/priv/python (the port program); this
        # step adds the port program's Python dependencies beside it
        steps: [:assemble, &vendor_python_deps/1]
      ]
    ]
  end

  # Copies pyzmq, PyNaCl, erlang-py and click, as installed for the Python
  # named by PYDIST_PYTHON (else python3), into the release's
  # lib/py_dist-VSN/priv/python_deps: the target machine then needs only
  # python3 (same version, OS and architecture as that one).  The vendoring
  # module runs from the release's own copy of the pydist package.
  # PYDIST_VENDOR=0 skips it (the target then needs the dependencies
  # installed: pip install ...).
  defp vendor_python_deps(release) do
    if System.get_env("PYDIST_VENDOR") != "0" do
      python = System.get_env("PYDIST_PYTHON", "python3")
      [package] = Path.wildcard(Path.join(release.path, "lib/py_dist-*/priv/python"))

      {_, 0} =
        System.cmd(python, ["-m", "pydist.vendor", release.path],
          env: [{"PYTHONPATH", package}],
          stderr_to_stdout: true,
          into: IO.stream()
        )
    end

    release
  end
end
