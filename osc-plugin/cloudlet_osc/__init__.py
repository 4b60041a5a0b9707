"""OpenStackClient commands for OpenStack++ (libcloudlet): the cloudlet
operations that OpenStack's standard commands lack (docs/openstack.md)."""
