// Sounds imported from assets/: the bundler hands back their URL.
declare module "*.wav" {
  const url: string;
  export default url;
}
