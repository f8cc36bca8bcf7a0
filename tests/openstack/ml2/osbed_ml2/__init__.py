"""An ML2 mechanism driver for a test bed where no guest ever boots.

Neutron binds a port only when some mechanism driver accepts it; the real ones
(Open vSwitch, Linux bridge, OVN) wait for an agent or a controller on the host
to say the port is wired. The test bed has none, so this driver accepts every
port on every segment at once and marks it ACTIVE: nova's fake hypervisor gets
a bound port, and the API behaves as on a cloud whose wiring worked.

``octavia_network`` holds the bed's Octavia network driver (real VIP ports in
neutron, no amphora plumbing); it is imported only by Octavia.
"""
