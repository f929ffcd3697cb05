// Placeholder: the page is being built (issue 29).
export function ChangesPage() {
  return (
    <section>
      <h1>Change Explorer</h1>
    </section>
  );
}
