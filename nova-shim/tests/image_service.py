"""A local stand-in for Glance's HTTP session (nova.image.glance.
GlanceImageServiceV2): no Glance service runs here. Only the session is
replaced, so Nova's real glance.API code (lookups, argument passing) runs
between the driver and it. Image data lives in files under a folder."""
import copy
import os
import shutil
import uuid


class LocalImageService:
    def __init__(self, root):
        self.root = root
        self.images = {}
        os.makedirs(root, exist_ok=True)

    def path(self, image_id):
        return os.path.join(self.root, image_id)

    def add(self, name, properties=None, **fields):
        image_id = str(uuid.uuid4())
        self.images[image_id] = dict(id=image_id, name=name, status="queued", size=0,
                                     properties=dict(properties or {}), **fields)
        return image_id

    # -- the session interface glance.API calls

    def show(self, context, image_id, include_locations=False, show_deleted=True):
        from nova import exception
        if image_id not in self.images:
            raise exception.ImageNotFound(image_id=image_id)
        return copy.deepcopy(self.images[image_id])

    def create(self, context, image_meta, data=None):
        image_id = self.add(image_meta.get("name"), image_meta.get("properties"))
        return self.update(context, image_id, image_meta, data)

    def update(self, context, image_id, image_meta, data=None, purge_props=True):
        image = self.images[image_id]
        meta = copy.deepcopy(image_meta)
        props = meta.pop("properties", {})
        if purge_props:
            image["properties"] = {}
        image["properties"].update(props)
        image.update(meta)
        if data is not None:
            with open(self.path(image_id), "wb") as f:
                shutil.copyfileobj(data, f)
            image["size"] = os.path.getsize(self.path(image_id))
            image["status"] = "active"
        return copy.deepcopy(image)

    def download(self, context, image_id, data=None, dst_path=None, trusted_certs=None):
        src = self.path(image_id)
        if dst_path:
            shutil.copyfile(src, dst_path)
            return None
        with open(src, "rb") as f:
            if data is None:
                return [f.read()]
            shutil.copyfileobj(f, data)
        return None

    def delete(self, context, image_id):
        self.images.pop(image_id, None)
        if os.path.exists(self.path(image_id)):
            os.unlink(self.path(image_id))
        return True
