// wgsl_reflect's package entry is CommonJS under "type": "module"; its ESM build is imported by path.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
