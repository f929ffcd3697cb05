// Placeholder: the page is being built (issue 29).
export function StoragePage() {
  return (
    <section>
      <h1>Storage Explorer</h1>
    </section>
  );
}
