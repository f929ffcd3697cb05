// Placeholder: the page is being built (issue 29).
export function MovesPage() {
  return (
    <section>
      <h1>Moves</h1>
    </section>
  );
}
