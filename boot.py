# PyScript entry point of the page: app/ and shaders/ were unpacked from py/localllm.zip into
# the virtual FS (pyscript.json "files"); everything else lives in the app package.
from app.main import start

await start()  # noqa: F704  (PyScript runs this file with top-level await)
