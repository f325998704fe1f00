// File-name slugs of result JSONs: "nvidia nvidia-h200" (Dawn's vendor + device name) and
// "NVIDIA H200" both become "nvidia-h200".

export function resultSlug(name: string, fallback = 'device'): string {
  const words = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').split('-');
  // drop a vendor word that the device name repeats
  const s = (words.length > 1 && words[0] === words[1] ? words.slice(1) : words).join('-');
  return s || fallback;
}
