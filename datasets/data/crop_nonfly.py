"""Crop the three raw-only non-Drosophila volumes of shared/data/em to <= 15 MB each for bundling.

usage: python datasets/data/crop_nonfly.py SHARED_EM_DIR OUT_DIR   (OUT_DIR is normally datasets/data)

Each input is the file made by convert_em_nonfly.py (see datasets/data/README.md); the output keeps its
'raw' dataset (uint8, z, y, x) and all attributes, crops y and x to the centre (z is kept whole), appends the
crop to 'source', and is written with the same gzip-6 + shuffle compression. The Platynereis file is small
enough and is copied byte for byte.
"""
import os
import shutil
import sys

import h5py
import numpy as np

KW = dict(compression='gzip', compression_opts=6, shuffle=True, chunks=True)
# (folder, input file, output file, central crop size in y and x; None = copy unchanged)
CROPS = [
    ('mouse_s1cortex_atumsem_kasthuri2015', 'rawonly_snemi3d_test_crop.h5', 'rawonly_snemi3d_test_crop384.h5', 384),
    ('human_temporalcortex_mssem_h01', 'rawonly_z3737-3773.h5', 'rawonly_z3737-3773_crop600.h5', 600),
    ('platynereis_larva_sbem_vergara2021', 'rawonly_membrane_unet_test_input.h5',
     'rawonly_membrane_unet_test_input.h5', None),
]


def crop(src, out, size):
    with h5py.File(src, 'r') as f:
        raw, attrs = f['raw'], dict(f['raw'].attrs)
        _, ny, nx = raw.shape
        y0, x0 = (ny - size) // 2, (nx - size) // 2
        data = raw[:, y0:y0 + size, x0:x0 + size]
    assert data.dtype == np.uint8 and data.shape[1:] == (size, size)
    attrs['source'] = f"{attrs['source']}; then bundled crop y,x = {y0}:{y0 + size}, {x0}:{x0 + size} of that file"
    tmp = out + '.tmp'
    with h5py.File(tmp, 'w') as g:
        g.create_dataset('raw', data=np.ascontiguousarray(data), **KW)
        for obj in (g, g['raw']):
            for k, v in attrs.items():
                obj.attrs[k] = v
    os.replace(tmp, out)


def main(src_dir, out_dir):
    for folder, name, out_name, size in CROPS:
        src, out = os.path.join(src_dir, folder, name), os.path.join(out_dir, folder, out_name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if size is None:
            shutil.copyfile(src, out)
        else:
            crop(src, out, size)
        print(out, os.path.getsize(out))


if __name__ == '__main__':
    main(*sys.argv[1:3])
