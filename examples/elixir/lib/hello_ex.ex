defmodule HelloEx do
  @moduledoc "What one node of the example asks another: a greeting."

  @doc "Greets from this node: `{:hello, node(), message}`."
  def greet(message), do: {:hello, node(), message}
end
