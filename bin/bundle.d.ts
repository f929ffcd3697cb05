/** The checkout this command runs from. */
export declare const ROOT: string;
/** The current bundle's entry if no source it was made from has changed since. */
export declare function currentEntry(root?: string): string | undefined;
/** Builds the bundle of `root`'s src/main.ts and makes it current; returns its entry. */
export declare function build(root?: string): Promise<string>;
