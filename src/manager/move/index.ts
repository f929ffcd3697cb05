// Manager-side live move (issue 9, control-plane half): work in progress.
export {};
