// Reads and writes through the route table, with TanStack Query keeping what was read and
// refreshing it when the fabric's event stream says something changed (events.ts).
import { useMutation, useQuery, useQueryClient, type UseQueryOptions } from '@tanstack/react-query';
import { call, type Input, type Output, type RouteName } from './api.js';
import { useSession } from './session.js';

/** The query key of one read: the route's name first, so an event can refresh a whole family. */
export const keyOf = <K extends RouteName>(name: K, input: Input<K>) => [name, input] as const;

export function useApi<K extends RouteName>(
  name: K,
  input: Input<K>,
  options: Pick<UseQueryOptions<Output<K>>, 'enabled' | 'refetchInterval' | 'placeholderData'> = {},
) {
  const { token } = useSession();
  return useQuery<Output<K>>({
    queryKey: keyOf(name, input),
    queryFn: ({ signal }) => call(name, input, token, signal),
    ...options,
  });
}

/** A write. When it succeeds every read is refreshed: what it changed is shown at once. */
export function useAction<K extends RouteName>(name: K) {
  const { token } = useSession();
  const queryClient = useQueryClient();
  return useMutation<Output<K>, Error, Input<K>>({
    mutationFn: (input) => call(name, input, token),
    onSuccess: () => queryClient.invalidateQueries(),
  });
}
