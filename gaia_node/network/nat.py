"""Named ports: DNAT from any local address of the node to the container, with nftables.

The node manager owns one table (family ip). Its rules are fixed; what changes per container
is the `ports` map, (protocol . host port) -> container address, so adding or removing a
container is one element and never needs a rule handle. The rendering is pure (unit-tested);
`Nft` runs it through `nft -f -`, one atomic transaction per call.
"""
import subprocess

NFT = "nft"
TIMEOUT = 10


class NftError(Exception):
    pass


def table_script(table: str, bridge: str, subnet: str) -> str:
    """The table with its chains and map; re-running it keeps the map's elements and replaces
    the rules (each chain is flushed in the same transaction)."""
    chains = {
        "guard": "type filter hook prerouting priority -300; policy accept;",
        "prerouting": "type nat hook prerouting priority -100; policy accept;",
        "output": "type nat hook output priority -100; policy accept;",
        "postrouting": "type nat hook postrouting priority 100; policy accept;",
    }
    rules = {
        # route_localnet lets 127/8 through the bridge: not from containers to the host's loopback.
        "guard": [f'iifname "{bridge}" ip daddr 127.0.0.0/8 drop'],
        "prerouting": ["fib daddr type local dnat ip to meta l4proto . th dport map @ports"],
        "output": ["fib daddr type local dnat ip to meta l4proto . th dport map @ports"],
        "postrouting": [
            # the host's own 127.0.0.1 connections: the container must answer the gateway
            f'ip saddr 127.0.0.0/8 oifname "{bridge}" masquerade',
            # hairpin: a container reaching another through the node's address
            f'ip saddr {subnet} oifname "{bridge}" ct status dnat masquerade',
            # containers reaching beyond the node
            f'ip saddr {subnet} oifname != "{bridge}" masquerade',
        ],
    }
    lines = [f"add table ip {table}",
             f"add map ip {table} ports {{ type inet_proto . inet_service : ipv4_addr; }}"]
    for chain, spec in chains.items():
        lines.append(f"add chain ip {table} {chain} {{ {spec} }}")
        lines.append(f"flush chain ip {table} {chain}")
        lines.extend(f"add rule ip {table} {chain} {rule}" for rule in rules[chain])
    return "\n".join(lines) + "\n"


def _elements(ports) -> str:
    return ", ".join(f"{proto} . {port} : {address}" if address else f"{proto} . {port}"
                     for proto, port, address in ports)


def add_ports_script(table: str, ports, address: str) -> str:
    """ports: (protocol, host port) pairs, all to `address`."""
    if not ports:
        return ""
    return f"add element ip {table} ports {{ {_elements([(p, n, address) for p, n in ports])} }}\n"


def delete_port_script(table: str, protocol: str, port: int) -> str:
    return f"delete element ip {table} ports {{ {protocol} . {port} }}\n"


def delete_table_script(table: str) -> str:
    return f"delete table ip {table}\n"


class Nft:
    def run(self, script: str) -> None:
        if not script:
            return
        try:
            done = subprocess.run([NFT, "-f", "-"], input=script, capture_output=True, text=True, timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NftError(f"nft: {e}") from None
        if done.returncode != 0:
            raise NftError(f"nft: {done.stderr.strip() or done.returncode}")

    def ensure_table(self, table: str, bridge: str, subnet: str) -> None:
        self.run(table_script(table, bridge, subnet))

    def add_ports(self, table: str, ports, address: str) -> None:
        self.run(add_ports_script(table, ports, address))

    def delete_ports(self, table: str, ports) -> None:
        """One transaction each: an element already gone must not keep the others."""
        for protocol, port in ports:
            try:
                self.run(delete_port_script(table, protocol, port))
            except NftError as e:
                if "No such file" not in str(e):
                    raise

    def ports(self, table: str) -> dict:
        """(protocol, port) -> address of the map's elements (tests, leak checks)."""
        import json
        done = subprocess.run([NFT, "-j", "list", "map", "ip", table, "ports"], capture_output=True, text=True,
                              timeout=TIMEOUT)
        if done.returncode != 0:
            return {}
        out = {}
        for item in json.loads(done.stdout).get("nftables", []):
            for elem in (item.get("map") or {}).get("elem", []):
                key, value = elem
                proto, port = key["concat"]
                out[(proto, int(port))] = value
        return out

    def delete_table(self, table: str) -> None:
        try:
            self.run(delete_table_script(table))
        except NftError as e:
            if "No such file" not in str(e):
                raise
