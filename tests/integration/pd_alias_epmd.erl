%% An -epmd_module for test_epmd_alias.py: erl_epmd in all things, except
%% that it alone knows where host "alias.test" is (not DNS, not /etc/hosts).
-module(pd_alias_epmd).
-export([start_link/0, register_node/2, register_node/3, port_please/2,
         port_please/3, listen_port_please/2, names/1, address_please/3]).

start_link() -> erl_epmd:start_link().
register_node(Name, Port) -> erl_epmd:register_node(Name, Port).
register_node(Name, Port, Family) -> erl_epmd:register_node(Name, Port, Family).
port_please(Name, Ip) -> erl_epmd:port_please(Name, Ip).
port_please(Name, Ip, Timeout) -> erl_epmd:port_please(Name, Ip, Timeout).
listen_port_please(Name, Host) -> erl_epmd:listen_port_please(Name, Host).
names(Host) -> erl_epmd:names(Host).

address_please(_Name, "alias.test", inet) -> {ok, {127, 0, 0, 1}};
address_please(Name, Host, Family) -> erl_epmd:address_please(Name, Host, Family).
