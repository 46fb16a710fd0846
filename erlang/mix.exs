# The py_dist application as a Mix project, so that an Elixir project can
# depend on it by path or git (`{:py_dist, path: ".../erlang"}`).  The root
# rebar.config stays the build of this repository (xref, dialyzer, eunit):
# rebar3 ignores this file, and Mix builds into the depending project's
# _build, never here.
#
# The application resource is the one rebar3 uses, src/py_dist.app.src, read
# here so the two builds cannot disagree on version or registered names.
defmodule PyDist.MixProject do
  use Mix.Project

  @app_src Path.join([__DIR__, "src", "py_dist.app.src"])
  @external_resource @app_src
  {:ok, [{:application, :py_dist, props}]} = :file.consult(@app_src)
  @props props

  def project do
    [
      app: :py_dist,
      version: to_string(@props[:vsn]),
      language: :erlang,
      # no warnings_as_errors, unlike rebar.config (this repository's own
      # gate): as a dependency, a warning of a newer OTP must not fail the
      # user's build
      erlc_options: [:debug_info, :warn_unused_import],
      deps: []
    ]
  end

  def application do
    [
      description: to_charlist(@props[:description]),
      registered: @props[:registered],
      # kernel and stdlib only: Mix adds no elixir or logger to an Erlang project
      applications: @props[:applications],
      env: @props[:env]
    ]
  end
end
