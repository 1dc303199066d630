export function main(_argv: string[]): Promise<number> {
  console.log('meshd');
  return Promise.resolve(0);
}
