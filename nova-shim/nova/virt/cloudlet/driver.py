"""CloudletDriver: Nova's libvirt driver plus cloudlet operations.

Ordinary instances take the libvirt driver's paths unchanged. An instance
whose server metadata or image asks for a cloudlet operation
(properties.plan_spawn) is made by libcloudlet instead: synthesized from an
overlay, resumed from a base VM, or received by handoff from another
cloudlet. libcloudlet gives the domain Nova's UUID, so everything the
libvirt driver does by UUID afterwards (get_info, reboot, pause, destroy,
console) works on it as on any other instance. snapshot() of a cloudlet
instance makes a VM overlay instead of a disk image, and a live migration
of one is carried by the cloudlet handoff (live_migration.py; docs/nova.md).
"""
import contextlib
import threading

from oslo_log import log as logging

from nova.compute import task_states
from nova import exception
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver

import cloudlet

from nova.virt.cloudlet import conf
from nova.virt.cloudlet import handoff_out
from nova.virt.cloudlet import handoff_shared
from nova.virt.cloudlet import live_migration
from nova.virt.cloudlet import overlay_source
from nova.virt.cloudlet import properties
from nova.virt.cloudlet import threads

LOG = logging.getLogger(__name__)
CONF = conf.CONF

_LOG_LEVELS = {
    cloudlet.LogLevel.ERROR: LOG.error,
    cloudlet.LogLevel.WARN: LOG.warning,
    cloudlet.LogLevel.INFO: LOG.info,
}


def _library_log(level, message):
    _LOG_LEVELS.get(level, LOG.debug)("libcloudlet: %s", message)


def _refuse(instance, reason):
    """A spawn that no other host would do better: the compute manager then
    records the reason as the instance's fault and does not reschedule (an
    InstanceDeployFailure is rescheduled, and once the hosts run out the
    fault only says "Exceeded maximum number of retries")."""
    return exception.BuildAbortException(instance_uuid=instance.uuid,
                                         reason=reason)


class CloudletDriver(libvirt_driver.LibvirtDriver):

    def __init__(self, virtapi, read_only=False, **kwargs):
        super().__init__(virtapi, read_only)
        self._cloudlet_ctx = None
        self._cloudlet_lock = threading.Lock()
        # instance UUID -> cloudlet.Cancel of a cloudlet spawn under way,
        # so that a delete arriving meanwhile stops it.
        self._spawning = {}
        # instance UUID -> live_migration.Receiving (this host the destination)
        self._receiving = {}
        # instance UUID -> cloudlet.Cancel of a handoff sent (the source)
        self._migrating = {}

    # -- the library

    def _cloudlet(self):
        with self._cloudlet_lock:
            if self._cloudlet_ctx is None:
                self._cloudlet_ctx = cloudlet.Context(
                    libvirt_uri=self._uri(), store_dir=conf.store_dir(),
                    cpu_model=CONF.cloudlet.cpu_model, log=_library_log,
                    log_level=cloudlet.LogLevel.INFO)
            return self._cloudlet_ctx

    def init_host(self, host, **kwargs):
        super().init_host(host)
        # Handoffs to other clouds, asked for through server metadata.
        self._handoff_out = handoff_out.Watcher(self)
        self._handoff_out.start()

    def cleanup_host(self, host, **kwargs):
        watcher = getattr(self, "_handoff_out", None)
        if watcher is not None:
            watcher.stop()
        with self._cloudlet_lock:
            ctx, self._cloudlet_ctx = self._cloudlet_ctx, None
        if ctx is not None:
            ctx.close()
        return super().cleanup_host(host)

    @staticmethod
    def is_cloudlet_instance(instance):
        return bool((instance.system_metadata or {}).get(properties.SYS_BASE_ID))

    # -- spawn

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None,
              **kwargs):
        try:
            plan = properties.plan_spawn(instance)
        except properties.PlanError as e:
            raise _refuse(instance, str(e))
        if plan is None:
            return super().spawn(context, instance, image_meta, injected_files,
                                 admin_password, allocations,
                                 network_info=network_info,
                                 block_device_info=block_device_info,
                                 power_on=power_on, accel_info=accel_info,
                                 **kwargs)
        self._spawn_cloudlet(context, instance, image_meta, plan,
                             network_info or [], block_device_info, power_on)

    def _spawn_cloudlet(self, context, instance, image_meta, plan,
                        network_info, block_device_info, power_on):
        if block_device_info and block_device_info.get("block_device_mapping"):
            raise _refuse(instance, "cloudlet instances run on their base's "
                                    "disks; attach volumes after the spawn")
        if len(network_info) > 1:
            raise _refuse(instance, "cloudlet instances get one NIC (the base's, "
                                    "made fresh); %d ports were requested"
                          % len(network_info))
        nic = {}
        if network_info:
            nic["nic_xml"] = self._nic_xml(instance, network_info[0])
            self.plug_vifs(instance, network_info)
        ctx = self._cloudlet()
        cancel = cloudlet.Cancel()
        self._spawning[instance.uuid] = cancel
        watching = threading.Event()
        watcher = threading.Thread(target=self._cancel_on_delete,
                                   args=(context, instance.uuid, cancel, watching),
                                   daemon=True)
        common = dict(name=instance.name, uuid=instance.uuid,
                      virt_type=CONF.libvirt.virt_type, cancel=cancel, **nic)
        staged = None  # a Glance overlay's local copy, named in messages by its URL
        try:
            watcher.start()  # inside: the finally below stops it
            if plan.base_id:
                self._ensure_base(context, plan)
            if plan.kind == "resume":
                info = threads.execute(ctx.base_resume, plan.base_id, **common)
                kind = "resumed"
            elif plan.kind == "synthesize":
                with overlay_source.resolve(plan.overlay_url, context,
                                            self._image_api) as src:
                    if src != plan.overlay_url:
                        staged = src
                    info = threads.execute(
                        ctx.synthesize, src, base=plan.base_id,
                        max_download_bytes=CONF.cloudlet.max_overlay_mb << 20,
                        early_start=plan.early_start, **common)
                kind = "synthesized"
            else:
                info = self._receive_handoff(ctx, instance, plan, common)
                kind = "received"
        except (cloudlet.CloudletError, overlay_source.SourceError) as e:
            with contextlib.suppress(Exception):
                if network_info:
                    self.unplug_vifs(instance, network_info)
            LOG.error("cloudlet %s failed: %s", plan.kind, e, instance=instance)
            reason = "cloudlet %s failed: %s" % (plan.kind, e)
            if staged:
                # The tenant knows the overlay by its URL, not by the
                # compute host's work file.
                reason = reason.replace(staged, plan.overlay_url)
            if isinstance(e, cloudlet.NotFoundError) and plan.base_id:
                # This host lacks the base: another host may hold it.
                raise exception.InstanceDeployFailure(reason=reason)
            raise _refuse(instance, reason)
        finally:
            watching.set()
            if watcher.ident is not None:  # started
                watcher.join()
            self._spawning.pop(instance.uuid, None)
            cancel.close()
        instance.system_metadata[properties.SYS_BASE_ID] = info.base_id
        instance.system_metadata[properties.SYS_KIND] = kind
        if getattr(info, "early_start", 0):
            instance.system_metadata[properties.SYS_EARLY_START] = "1"
        LOG.info("cloudlet: %s from base %s in %.2f s", kind, info.base_id,
                 getattr(info, "total_seconds", None) or
                 getattr(info, "seconds", 0.0), instance=instance)
        if not power_on:
            # A restored memory image runs at once; hold it paused.
            self._host.get_guest(instance).pause()

    @staticmethod
    def _cancel_on_delete(context, uuid, cancel, done):
        """Cancels a cloudlet spawn whose instance a user deletes meanwhile.

        destroy() cannot: the compute manager runs a delete only once the
        build has released the instance's lock (both hold it), so a slow
        synthesis would make a delete wait for all of it. The API marks the
        instance task_state=deleting at once, though; that is what this
        watches (a green thread under nova-compute's eventlet, while the
        library call runs in a native one)."""
        while not done.wait(CONF.cloudlet.delete_poll_seconds):
            try:
                inst = objects.Instance.get_by_uuid(context, uuid, expected_attrs=[])
            except exception.InstanceNotFound:
                inst = None
            except Exception as e:  # the conductor may be briefly away; ask again
                LOG.debug("cloudlet: cannot read instance %s: %s", uuid, e)
                continue
            if inst is None or inst.task_state == task_states.DELETING or inst.deleted:
                LOG.info("cloudlet: instance %s is being deleted; cancelling its spawn", uuid)
                cancel.trigger()
                return

    def _ensure_base(self, context, plan):
        """The base must be in the store; import its package from Glance
        (image property cloudlet_base_package) when it is not."""
        ctx = self._cloudlet()
        try:
            ctx.base_show(plan.base_id)
            return
        except cloudlet.NotFoundError:
            if not plan.base_package:
                raise
        LOG.info("cloudlet: base %s not in the store; importing image %s",
                 plan.base_id, plan.base_package)
        with conf.work_file("base-", ".pkg") as path:
            self._image_api.download(context, plan.base_package, dest_path=path)
            try:
                # Named by its ID: a host's store is shared by every
                # tenant's bases, whose own names may clash.
                info = threads.execute(ctx.base_import, path, name=plan.base_id)
            except cloudlet.ExistsError as e:
                # A base we hold already: not the one that was missing.
                raise overlay_source.SourceError(
                    "image %s does not hold base %s: %s" % (
                        plan.base_package, plan.base_id, e.message))
        if info.id != plan.base_id:
            with contextlib.suppress(cloudlet.CloudletError):
                ctx.base_remove(info.id)
            raise overlay_source.SourceError(
                "image %s does not hold base %s but %s" % (
                    plan.base_package, plan.base_id, info.id))

    def _nic_xml(self, instance, vif):
        """Nova's own <interface> for the port: MAC, bridge/tap, model."""
        image_meta = objects.ImageMeta.from_instance(instance)
        return self.vif_driver.get_config(
            instance, vif, image_meta, instance.flavor,
            CONF.libvirt.virt_type).to_xml()

    def _receive_handoff(self, ctx, instance, plan, common):
        with contextlib.ExitStack() as stack:
            token_file = CONF.cloudlet.handoff_token_file
            if plan.token:
                token_file = stack.enter_context(handoff_shared.token_file(plan.token))
            listener = stack.enter_context(ctx.handoff_listen(CONF.cloudlet.handoff_listen))
            address = "%s:%d" % (CONF.cloudlet.handoff_address or
                                 handoff_shared.migration_host(), listener.port)
            # Where the client tells the source to send (the server's own
            # metadata: the tenant who asked for the handoff reads it).
            instance.metadata[properties.META_HANDOFF_ADDRESS] = address
            instance.save()
            LOG.info("cloudlet: waiting for a handoff at %s", address, instance=instance)
            info = handoff_shared.receive(listener, token_file, **common)  # common: cancel too
        # Done with: the token no longer opens anything; the address is stale.
        for key in (properties.META_HANDOFF, properties.META_HANDOFF_ADDRESS):
            instance.metadata.pop(key, None)
        return info

    # -- live migration (live_migration.py)

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        if not self.is_cloudlet_instance(instance):
            return super().pre_live_migration(
                context, instance, block_device_info, network_info,
                disk_info, migrate_data)
        if block_device_info and block_device_info.get("block_device_mapping"):
            raise exception.MigrationPreCheckError(
                reason="a cloudlet instance with volumes attached cannot be "
                       "handed off; detach them first")
        sysmeta = instance.system_metadata or {}
        plan = properties.SpawnPlan(
            "receive", sysmeta.get(properties.SYS_BASE_ID), None,
            properties.image_property(instance, properties.PROP_BASE_PACKAGE))
        try:
            # The handoff sends only what this host's copy of the base lacks.
            self._ensure_base(context, plan)
        except (cloudlet.CloudletError, overlay_source.SourceError) as e:
            raise exception.MigrationPreCheckError(
                reason="base %s is not on %s and could not be imported: %s"
                       % (plan.base_id, CONF.host, e))
        self._pre_live_migration_plug_vifs(instance, network_info, migrate_data)
        nic_xml = None
        if "vifs" in migrate_data and migrate_data.vifs:
            # The port's binding for this host (Nova's multiple bindings).
            nic_xml = self._nic_xml(instance, migrate_data.vifs[0].get_dest_vif())
        elif network_info:
            nic_xml = self._nic_xml(instance, network_info[0])
        try:
            receiving = live_migration.Receiving(self._cloudlet(), instance, nic_xml)
        except cloudlet.CloudletError as e:
            raise exception.MigrationError(
                reason="cannot listen for the handoff on %s: %s"
                       % (live_migration.listen_address(), e))
        self._receiving[instance.uuid] = receiving
        migrate_data.bdms = []
        migrate_data.serial_listen_ports = []
        migrate_data.target_connect_addr = receiving.target
        LOG.info("cloudlet: live migration: waiting for the handoff on %s",
                 receiving.target, instance=instance)
        return migrate_data

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        if not self.is_cloudlet_instance(instance):
            return super().live_migration(
                context, instance, dest, post_method, recover_method,
                block_migration=block_migration, migrate_data=migrate_data)
        target = migrate_data.target_connect_addr
        cancel = cloudlet.Cancel()
        self._migrating[instance.uuid] = cancel
        try:
            info = live_migration.send(self._cloudlet(), instance, target, cancel)
        except cloudlet.CloudletError as e:
            # The handoff's rule: a failed send leaves the VM running here.
            LOG.error("cloudlet: live migration to %s (%s) failed: %s",
                      dest, target, e, instance=instance)
            status = "cancelled" if isinstance(e, cloudlet.CancelledError) else "failed"
            recover_method(context, instance, dest, migrate_data,
                           migration_status=status)
            return
        finally:
            self._migrating.pop(instance.uuid, None)
            cancel.close()
        LOG.info("cloudlet: live migration to %s: %d bytes sent in %.2f s "
                 "(downtime %.3f s, %s)", dest, info.bytes_sent,
                 info.total_seconds, info.downtime_seconds, info.codec,
                 instance=instance)
        post_method(context, instance, dest, block_migration, migrate_data)

    def live_migration_abort(self, instance):
        cancel = self._migrating.get(instance.uuid)
        if cancel is None:
            return super().live_migration_abort(instance)
        LOG.info("cloudlet: live migration aborted by request", instance=instance)
        cancel.trigger()

    def live_migration_force_complete(self, instance):
        if instance.uuid in self._migrating:
            # The handoff converges by itself (it stops copying when the
            # dirty pages no longer shrink); pausing the VM would not help it.
            LOG.info("cloudlet: force-complete of a handoff: nothing to do",
                     instance=instance)
            return
        return super().live_migration_force_complete(instance)

    def post_live_migration_at_destination(self, context, instance,
                                           network_info, block_migration=False,
                                           block_device_info=None):
        receiving = self._receiving.pop(instance.uuid, None)
        if receiving is not None:
            try:
                info = receiving.finish(CONF.cloudlet.handoff_wait_seconds)
            except (cloudlet.CloudletError, TimeoutError) as e:
                raise exception.MigrationError(
                    reason="the handoff did not complete here: %s" % e)
            instance.system_metadata[properties.SYS_BASE_ID] = info.base_id
            instance.system_metadata[properties.SYS_KIND] = "received"
        return super().post_live_migration_at_destination(
            context, instance, network_info, block_migration=block_migration,
            block_device_info=block_device_info)

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info, block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        receiving = self._receiving.pop(instance.uuid, None)
        if receiving is not None:
            receiving.abandon()
        return super().rollback_live_migration_at_destination(
            context, instance, network_info, block_device_info,
            destroy_disks=destroy_disks, migrate_data=migrate_data)

    # -- destroy

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True, **kwargs):
        cancel = self._spawning.get(instance.uuid)
        if cancel is not None:
            cancel.trigger()
        super().destroy(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=destroy_disks,
                        destroy_secrets=destroy_secrets, **kwargs)
        if destroy_disks:
            # The instance's files (disk layers over the base) in the store.
            # Asked even when the instance does not say it is a cloudlet
            # one: a delete that arrived during the spawn makes the compute
            # manager drop the spawn's system metadata (its save expects
            # task_state spawning), so the record may not know.
            try:
                self._cloudlet().instance_remove(instance.name)
            except cloudlet.NotFoundError:
                pass

    # -- snapshot

    def snapshot(self, context, instance, image_id, update_task_state,
                 **kwargs):
        if not self.is_cloudlet_instance(instance):
            return super().snapshot(context, instance, image_id,
                                    update_task_state, **kwargs)
        # A cloudlet instance's snapshot is its VM overlay: the difference
        # from its base (memory and disk), which synthesizes back into it.
        try:
            self._host.get_guest(instance)
        except exception.InstanceNotFound:
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        snapshot = self._image_api.get(context, image_id)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        with conf.work_file("snapshot-", ".ovl") as path:
            try:
                info = threads.execute(self._cloudlet().overlay_create,
                                       instance.name, path)
            except cloudlet.CloudletError as e:
                raise exception.InstanceDeployFailure(
                    reason="cloudlet overlay of %s failed: %s" % (instance.name, e))
            metadata = {
                "status": "active",
                "name": snapshot["name"],
                "disk_format": "raw",
                "container_format": "bare",
                "properties": properties.overlay_image_properties(
                    info.base_id, instance),
            }
            update_task_state(task_state=task_states.IMAGE_UPLOADING,
                              expected_state=task_states.IMAGE_PENDING_UPLOAD)
            with open(path, "rb") as data:
                self._image_api.update(context, image_id, metadata, data)
            LOG.info("cloudlet: overlay of %d bytes uploaded as image %s",
                     info.file_bytes, image_id, instance=instance)

