// features.js — reference features of lookalike's default model, computed
// by TF.js on its CPU backend with the model exactly as nsfwjs loads it.
//
// For each NAME.rgb.gz in DIR (224×224 RGB bytes, gzipped; see
// mkinputs/main.go) it feeds x = byte/255 as a [1, 224, 224, 3] float32
// tensor to nsfwjs's MobileNetV2Mid graph model and reads the 1792-d
// pooled descriptor from the node below. It writes DIR/features.json:
//
//   {"package": ..., "tfjs": ..., "backend": "cpu", "node": ...,
//    "features": {"NAME": [1792 numbers], ...}}
//
// Usage (from this directory): npm ci && node features.js ../../embed/testdata/reference
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const tf = require('@tensorflow/tfjs');
const nsfwjs = require('nsfwjs');
const { MobileNetV2MidModel } = require('nsfwjs/models/mobilenet_v2_mid');

const SIZE = 224;
const NODE = 'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/' +
  'StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze';

function version(pkg) {
  const dir = path.join(__dirname, 'node_modules', ...pkg.split('/'));
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
}

async function main() {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node features.js DIR');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  await tf.ready();
  const net = await nsfwjs.load('MobileNetV2Mid', { modelDefinitions: [MobileNetV2MidModel] });
  const names = fs.readdirSync(dir).filter((f) => f.endsWith('.rgb.gz')).sort();
  if (names.length === 0) throw new Error(`no .rgb.gz inputs in ${dir}`);
  const features = {};
  for (const f of names) {
    const raw = zlib.gunzipSync(fs.readFileSync(path.join(dir, f)));
    if (raw.length !== SIZE * SIZE * 3) throw new Error(`${f}: ${raw.length} bytes, want ${SIZE * SIZE * 3}`);
    const out = tf.tidy(() => {
      const x = tf.tensor4d(new Uint8Array(raw), [1, SIZE, SIZE, 3], 'int32').toFloat().div(255);
      return net.model.execute(x, NODE);
    });
    if (out.shape.length !== 2 || out.shape[1] !== 1792) throw new Error(`${f}: output shape ${out.shape}`);
    features[f.replace(/\.rgb\.gz$/, '')] = Array.from(await out.data());
    out.dispose();
    console.error(`${f}: done`);
  }
  const doc = {
    package: `nsfwjs@${version('nsfwjs')} dist/models/mobilenet_v2_mid`,
    tfjs: version('@tensorflow/tfjs'),
    backend: tf.getBackend(),
    node: NODE,
    input: 'x = byte/255, [1, 224, 224, 3] float32 (NHWC)',
    features,
  };
  fs.writeFileSync(path.join(dir, 'features.json'), JSON.stringify(doc) + '\n');
  console.error(`wrote ${path.join(dir, 'features.json')} (${names.length} images)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
