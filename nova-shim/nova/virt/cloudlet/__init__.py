"""libcloudlet's Nova compute driver.

nova.conf: ``compute_driver = cloudlet.CloudletDriver`` (Nova imports
``nova.virt.cloudlet``). docs/nova.md describes the conventions.
"""
from nova.virt.cloudlet.driver import CloudletDriver

__all__ = ["CloudletDriver"]
