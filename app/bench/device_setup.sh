# Sourced by the H100 device-machine scripts (app/bench/h100.sh, sgmat_h100.sh): unpack the
# Vulkan loader (.gl), install the carried wheels (.whl) and Node + Dawn (.dawn), and put the
# carried dist/ (without models) in place. Carry .gl .whl .dawn.
export PYTHONUNBUFFERED=1
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
mkdir -p /tmp/node/bin node_modules/webgpu/dist/linux-x64
[ -x /tmp/node/bin/node ] || xz -dc .dawn/node.xz > /tmp/node/bin/node; chmod +x /tmp/node/bin/node
cp .dawn/webgpu/{index.js,package.json,LICENSE.md,types.d.ts} node_modules/webgpu/
[ -f node_modules/webgpu/dist/linux-x64/dawn.node ] || xz -dc .dawn/webgpu/dist/linux-x64/dawn.node.xz > node_modules/webgpu/dist/linux-x64/dawn.node
export PATH=/tmp/node/bin:$PATH
rm -rf dist && cp -r .dawn/dist dist
